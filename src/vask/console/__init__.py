"""The debug console: a live feed of what happens on an app, per-minute stats, and the server's event logs.

Nothing here runs while nobody watches: emit points ask ``ConsoleFeed.watching(app_id)`` once per event
(never per delivery) and build an event only when it says yes.
"""
