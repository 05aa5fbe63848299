"""Prometheus metrics of a service: its own registry, scrape-time collectors, histograms.

```python
async with open_service(config) as svc:
    text = prometheus_client.generate_latest(svc.metrics.registry)
    with svc.metrics.collecting(my_collector):  # another component's metrics, for a while
        ...
```

The names and labels are a contract with the dashboard and the alert rules: ``rtbus_``
prefix, base units in names, counters end in ``_total``, labels bounded (a state, a type, a
policy, a cause, a supervisor path; never a session id). ``Histogram`` (observed inline,
exported at scrape time by ``histogram_family``) is for other components' collectors.
"""

from ._histogram import Histogram as Histogram
from ._histogram import family as histogram_family
from ._service_metrics import ServiceMetrics as ServiceMetrics
from ._source import MetricsSource as MetricsSource

__all__ = ["Histogram", "MetricsSource", "ServiceMetrics", "histogram_family"]
