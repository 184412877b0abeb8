pytest_plugins = ["tests.servers.certs", "tests.servers.dovecot"]
