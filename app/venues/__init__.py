"""Exchanges reached through ccxt: market data feeds (and, later, live execution).
ccxt is imported only in the feeds' own process (feed_process), never by the service."""
