"""Compliance rules driven by the identity provider (SPEC §3.6): leavers, movers, drift, the safety brake."""
