"""The user service: accounts, log-in tokens, profiles and the follow graph."""
