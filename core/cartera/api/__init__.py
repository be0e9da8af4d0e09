"""HTTP surface: app factory, conventions (errors, pagination, idempotency), shared routes."""
