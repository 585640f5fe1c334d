"""The application layer. REST, GraphQL, the NATS listener, the ticker and the actors call only this."""
