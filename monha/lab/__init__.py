"""A two-node HA lab in network namespaces: the test bed and the demo."""
