"""Outbound tests run with the certificate and SMTP server plugins."""

pytest_plugins = ["tests.servers.certs", "tests.servers.smtp"]
