"""monha: a failover daemon for a two-node MariaDB/MySQL-backed monitoring server."""

__version__ = "0.1.0"
