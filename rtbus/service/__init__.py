"""The service: config -> supervision tree around one bus."""

from ._service import Service as Service
from ._service import ServiceConfig as ServiceConfig
from ._service import open_service as open_service

__all__ = ["Service", "ServiceConfig", "open_service"]
