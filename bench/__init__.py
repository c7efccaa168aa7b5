"""Side-by-side benchmark of monha and MHA 0.58 on the namespace lab (issue 6).

`python -m bench.compare` runs each fault scenario against both systems, alternating, on a
fresh lab per run, and prints the figures; `bench/mha/` holds the MHA side's hook and wrapper.
"""
