"""Exchanges reached through ccxt: market data feeds (and, later, live execution).
ccxt is imported only when a feed is configured."""
