"""Which module serves which channel: one dictionary instead of `if channel ==` branches."""

from __future__ import annotations

from channels.base import ChannelAdapter
from channels.config import GatewaySettings


def all_adapters(settings: GatewaySettings) -> dict[str, ChannelAdapter]:
    from channels.simulator import SimulatorChannel
    from channels.telegram import TelegramChannel
    from channels.twilio import twilio_channels

    adapters: dict[str, ChannelAdapter] = dict(twilio_channels(settings))
    adapters["telegram"] = TelegramChannel(settings)
    if settings.development:  # production: no simulator at all, not even its routes
        adapters["simulator"] = SimulatorChannel()
    return adapters
