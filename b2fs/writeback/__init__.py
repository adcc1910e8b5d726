"""Write-back: staging files, the durable journal, and background uploads of pending versions."""
