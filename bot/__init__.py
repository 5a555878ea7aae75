"""The composition root and the channels: settings, CLI, console, Teams, Slack, scheduler."""
