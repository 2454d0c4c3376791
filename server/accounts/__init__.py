"""Accounts of the people who run deliberations: organisers, moderators and administrators (participants have none).

``passwords`` hashes with Argon2id, ``emails`` normalises addresses, ``tokens`` signs session tokens (JWT),
``secret`` finds the deployment's signing key, ``store`` keeps users and sessions in the database, and ``service``
puts them together: sign in, verify a token, sign out.
"""
