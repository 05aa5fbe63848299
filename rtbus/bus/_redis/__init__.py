"""The Redis Streams bridge: the bus's events on Redis, consumed by groups anywhere.

Layout, trimming and delivery rules are documented in docs/redis.md. The public names
are exported by ``rtbus.redis`` alone, straight from the modules here: one list of them.
"""
