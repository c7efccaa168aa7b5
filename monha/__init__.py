"""monha: a failover daemon for a two-node MariaDB/MySQL-backed monitoring server."""

import warnings

__version__ = "0.1.0"

# asyncssh imports cryptography's DSA support, which cryptography 46+ deprecates with a warning
# printed on every start of `monha` and `monha-ctl` (stderr that operators and scripts read).
# monha never uses DSA keys; the warning says nothing about monha, so it is not shown.
warnings.filterwarnings(
    "ignore", message=r"DSA is deprecated", category=UserWarning, module=r"asyncssh(\.|$)"
)
