"""Pure domain model: devices, processes, usages, events, diffs. No OS, no Qt, no clock."""
