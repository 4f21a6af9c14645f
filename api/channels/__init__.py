"""Channel adapters: each turns a provider payload into an InboundMessage, registers the
composer that dresses outbound messages for it, and sends Envelopes.

Importing any channel module registers every channel's composer with the outbound pipeline
(`api.conversations.outbound.register_composer`): the domain never imports a channel.
"""

from api.channels.registry import install

install()
