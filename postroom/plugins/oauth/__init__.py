"""Builtin OAuth2 token providers (issue 17): ``microsoft`` (MSAL) and ``google`` (google-auth).

Each implements ``postroom_get_access_token`` for the profiles whose grant names it; the grant, its
encrypted tokens and the refresh coordination between workers live in :mod:`.store`. MSAL and the
Google libraries are imported only when a token is actually obtained, so a worker whose profiles
log in with passwords never loads them.
"""
