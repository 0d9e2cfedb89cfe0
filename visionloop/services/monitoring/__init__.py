"""Monitoring: alarms on each app's predict traffic, feedback and searches (docs/alarms.md).

- :mod:`.windows` reads the sliding windows from the store (SQL only);
- :mod:`.alarms` judges them with :mod:`visionloop.learning.drift` and
  :mod:`visionloop.learning.alarm_checks`, keeps the alarms in the ``alarms`` table and lists them;
- :mod:`.webhook` tells an operator's URL when an alarm fires or resolves;
- :mod:`.loop` runs the check in the server's background, one process at a time.
"""

from visionloop.services.monitoring.alarms import AlarmService, AlarmSettings, FiringAlarm

__all__ = ["AlarmService", "AlarmSettings", "FiringAlarm"]
