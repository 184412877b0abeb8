"""The data: engine, models, migrations, and the services that keep profiles, directory, configuration, tickets and rules."""
