"""The web dashboard's domain: sign-in (one-time links, sessions, OpenID Connect state), who may see
what, and the figures each page shows. The pages themselves live in ``bot/web``."""
