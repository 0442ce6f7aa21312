"""Paper execution service: accepts order intents and tracks them without real money."""
