"""Running a mount: options, startup checks, the trio main loop, signals, systemd readiness."""
