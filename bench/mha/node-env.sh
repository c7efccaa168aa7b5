#!/bin/sh
# Forced command for the benchmark's MHA ssh key (authorized_keys `command="..."`): runs what
# the manager asked for with the patched MHA modules first on PERL5LIB, so the node tools
# (save_binary_logs, apply_diff_relay_logs) work on current Perl and MariaDB. The directory
# comes from the first argument, written into authorized_keys by bench/mha.py.
PERL5LIB="$1${PERL5LIB:+:$PERL5LIB}"
export PERL5LIB
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
    exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
exec /bin/sh -l
