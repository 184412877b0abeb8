"""postroom's builtin plugins: protocols, ticket resolvers and retry policies."""
