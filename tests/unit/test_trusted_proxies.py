"""Which peers are trusted proxies: addresses, networks, IPv4-mapped IPv6, garbage."""

from __future__ import annotations

import ipaddress

import pytest

from api.web.proxies import is_trusted

pytestmark = pytest.mark.unit


def test_trusted_proxies_match_addresses_and_networks() -> None:
    configured = (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("::1/128"))
    assert is_trusted("10.1.200.7", configured)
    assert is_trusted("::ffff:10.1.0.1", configured)  # IPv4-mapped
    assert is_trusted("::1", configured)
    assert not is_trusted("10.2.0.1", configured)
    assert not is_trusted("not-an-ip", configured)
    assert not is_trusted(None, configured)
