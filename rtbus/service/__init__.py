"""The service: config -> supervision tree around one bus."""

from ._call_routes import CallRoute as CallRoute
from ._call_routes import CallsSettings as CallsSettings
from ._gc import young_gc_threshold as young_gc_threshold
from ._http import HttpAddress as HttpAddress
from ._http import HttpConfig as HttpConfig
from ._http import serve_http as serve_http
from ._http_calls import WEBHOOK_PATH as WEBHOOK_PATH
from ._placement import Placement as Placement
from ._placement import open_placement as open_placement
from ._placement import run_placement as run_placement
from ._placement_config import PlacementConfig as PlacementConfig
from ._placement_config import PlacementError as PlacementError
from ._placement_config import PlacementRefused as PlacementRefused
from ._placement_config import PlacementStatistics as PlacementStatistics
from ._placement_config import PlacementTimeout as PlacementTimeout
from ._placement_wire import PlacedSession as PlacedSession
from ._readiness import Readiness as Readiness
from ._readiness import ReadinessCheck as ReadinessCheck
from ._runtime import RunningService as RunningService
from ._runtime import SessionsNotStarted as SessionsNotStarted
from ._runtime import run_service as run_service
from ._service import DrainSummary as DrainSummary
from ._service import Service as Service
from ._service import ServiceConfig as ServiceConfig
from ._service import SystemWorker as SystemWorker
from ._service import open_service as open_service
from ._settings import BusSettings as BusSettings
from ._settings import DemoSettings as DemoSettings
from ._settings import LogSettings as LogSettings
from ._settings import ServiceSettings as ServiceSettings
from ._settings import SessionDefaults as SessionDefaults
from ._settings import Settings as Settings
from ._settings import SimUpstream as SimUpstream
from ._settings import StartupSession as StartupSession
from ._settings_load import SettingsError as SettingsError
from ._settings_load import load_settings as load_settings
from ._switchboard import CallView as CallView
from ._switchboard import Switchboard as Switchboard
from ._switchboard import SwitchboardStatistics as SwitchboardStatistics
from ._switchboard import run_switchboard as run_switchboard

__all__ = [
    "WEBHOOK_PATH",
    "CallRoute",
    "CallView",
    "CallsSettings",
    "DrainSummary",
    "BusSettings",
    "DemoSettings",
    "HttpAddress",
    "HttpConfig",
    "LogSettings",
    "PlacedSession",
    "Placement",
    "PlacementConfig",
    "PlacementError",
    "PlacementRefused",
    "PlacementStatistics",
    "PlacementTimeout",
    "Readiness",
    "ReadinessCheck",
    "RunningService",
    "Service",
    "ServiceConfig",
    "ServiceSettings",
    "SessionDefaults",
    "SessionsNotStarted",
    "Settings",
    "SettingsError",
    "SimUpstream",
    "StartupSession",
    "Switchboard",
    "SwitchboardStatistics",
    "SystemWorker",
    "load_settings",
    "open_placement",
    "open_service",
    "run_placement",
    "run_service",
    "run_switchboard",
    "young_gc_threshold",
    "serve_http",
]
