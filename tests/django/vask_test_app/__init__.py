"""An installed app for tests/django whose ``vask_channels`` module must be imported when Django starts."""
