"""The HTTP side: the aiohttp app, its pages, and exporter-toolkit web configuration."""
