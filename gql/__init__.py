"""Strawberry GraphQL API at /graphql: the same service layer as REST, seen through another door."""
