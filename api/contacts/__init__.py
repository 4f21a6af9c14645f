"""Infringers (people and companies) and the addresses they write from."""
