"""Pure tests of `steps.parse_ip_addr`: what vip_down reads to find the VIP's real prefix.

Regression (vip_down): a VIP added MHA-style (`ifconfig eth0:1 VIP` gives the class prefix) or
with /32 was "removed" with the configured prefix, `ip` answered "Cannot assign requested
address", and the step reported an absent VIP while the VIP stayed up.
"""

from __future__ import annotations

from monha.steps import IfAddress, parse_ip_addr

# `ip -o -4 addr show dev eth0` on a primary holding an MHA-era VIP (iproute2 6.1 layout).
ETH0 = (
    "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\"
    "       valid_lft forever preferred_lft forever\n"
    "2: eth0    inet 10.0.0.100/8 brd 10.255.255.255 scope global secondary eth0:1\\"
    "       valid_lft forever preferred_lft forever\n"
    "2: eth0    inet 192.0.2.7/32 scope global eth0:vip\\"
    "       valid_lft forever preferred_lft forever\n"
)


def test_labels_prefixes_and_secondary() -> None:
    assert parse_ip_addr(ETH0) == [
        IfAddress("10.0.0.5", 24, "eth0"),
        IfAddress("10.0.0.100", 8, "eth0:1", secondary=True),
        IfAddress("192.0.2.7", 32, "eth0:vip"),
    ]


def test_del_argv_uses_the_listed_prefix() -> None:
    vip = parse_ip_addr(ETH0)[1]
    assert vip.del_argv("eth0") == ["ip", "addr", "del", "10.0.0.100/8", "dev", "eth0"]
    assert str(vip) == "10.0.0.100/8 (eth0:1)"


def test_dhcp_flags_and_metric_do_not_hide_the_label() -> None:
    line = (
        "3: enp1s0    inet 192.168.1.23/24 metric 100 brd 192.168.1.255 scope global dynamic"
        " enp1s0\\       valid_lft 85813sec preferred_lft 85813sec\n"
    )
    assert parse_ip_addr(line) == [IfAddress("192.168.1.23", 24, "enp1s0")]


def test_point_to_point_address_takes_the_peer_prefix() -> None:
    line = (
        "3: d0    inet 10.1.1.1 peer 10.1.1.2/32 scope global d0\\"
        "       valid_lft forever preferred_lft forever\n"
    )
    (a,) = parse_ip_addr(line)
    assert (a.address, a.prefix, a.peer, a.label) == ("10.1.1.1", 32, "10.1.1.2/32", "d0")
    assert a.del_argv("d0") == ["ip", "addr", "del", "10.1.1.1", "peer", "10.1.1.2/32", "dev", "d0"]


def test_without_one_line_mode_and_with_noise() -> None:
    # `ip -4 addr show` (no -o): the label ends its line; link lines and junk are skipped.
    text = (
        "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP\n"
        "    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\n"
        "       valid_lft forever preferred_lft forever\n"
        "    inet not-an-address/24 scope global eth0\n"
        "    inet\n"
        "\n"
    )
    assert parse_ip_addr(text) == [IfAddress("10.0.0.5", 24, "eth0")]
    assert parse_ip_addr("") == []
