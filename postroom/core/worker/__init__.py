"""The worker (``postroom run``): the fetch scheduler, fetch leases, and the admin endpoint."""
