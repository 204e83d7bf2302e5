"""The built-in filesystem broker: a message file is visible to workers only once whole."""

from kombu import Connection

from config.broker import Transport


def test_a_message_is_written_aside_and_renamed_into_its_queue(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
               "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"])}

    with Connection("filesystem://", transport_options=options) as connection:
        assert isinstance(connection.transport, Transport)
        queue = connection.SimpleQueue("runs")
        queue.put({"sync_id": 7})
        files = [path.name for path in folders["queue"].iterdir()]
        message = queue.get(timeout=1)

    assert len(files) == 1 and files[0].endswith(".runs.msg")  # no partial file left behind
    assert message.payload == {"sync_id": 7}
