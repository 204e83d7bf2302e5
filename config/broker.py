"""The built-in filesystem broker, with messages that appear whole.

kombu's filesystem transport creates a message file and then writes it; a worker polling in
between takes the empty file and stops with "Unrecoverable error: JSONDecodeError". A worker
consuming several queues (dispatch, runs, celery) polls often enough to hit it. Writing under
a name no queue matches and renaming it into place (atomic within a folder) closes the gap.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: the same file name as kombu's, written before it is visible."""
        path = os.path.join(self.data_folder_out, f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg")
        partial = f"{path}.part"  # readers match names ending in ".<queue>.msg" only
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def use_whole_message_filesystem_transport() -> None:
    """`filesystem://` URLs get this transport (the URL's scheme picks it, not a setting)."""
    TRANSPORT_ALIASES["filesystem"] = "config.broker:Transport"
