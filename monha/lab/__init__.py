"""A two-node HA lab in network namespaces: the test bed and the demo.

Command line: `monha-lab up|down|status [--json]|exec NODE -- CMD|fault NAME ARGS|load ARGS`,
each with `--prefix P` (default $MONHA_LAB_PREFIX or "mh"). Python API:

    from monha.lab.lab import Lab
    lab = Lab("t1")
    lab.up()                                  # ~3 s once the template datadir is cached
    lab.node_argv("node2", ["monha", ...])    # nsenter into node2's net+mount+UTS namespaces
    lab.spawn_in("node2", argv, "monha")      # start a daemon in node2; `down` ends it
    lab.run_in("client", ["curl", ...])       # run to completion, CompletedProcess
    lab.up(server="mysql")                    # Oracle MySQL instead (monha-lab up --server mysql)
    lab.sql("node1", "SELECT 1")              # as the server's root over the node's socket
    lab.socket("node1")                       # /tmp/monha-lab/t1/node1/mysql/mysqld.sock
    lab.node_config("node2")                  # host path of node2's /etc/monha/monha.toml
    lab.faults.freeze("node1"); lab.faults.clear_all()
    lab.status(); lab.down()

Modules: names (pure names and paths), proc (processes by PID), state (the record `down`
replays), netns (namespaces, mounts), server (which server: mariadb or mysql_server, over
mysql_rootfs), sshd, services (init scripts), config_writer,
faults, holder (the too-many-connections process), status, lab (up/down), cli.
"""
