"""LearningChain p2p: authenticated transport, gossip, block sync, blob transfer.

The wire protocol is protocol_spec/wire.md. How a node wires it up::

    from p2p.config import P2PConfig
    from p2p.node import Node
    from p2p.gossip import Gossip
    from p2p.gossip_core import Verdict
    from p2p.sync import BlockSync          # BlockSource protocol: height/get_blocks/apply
    from p2p.blobs import BlobService
    from p2p.blobstore import BlobStore

    node = Node(key, P2PConfig(chain_id=..., port=..., bootstrap=(...),
                               is_admitted=lambda address: address in members))
    gossip = Gossip(node)
    gossip.subscribe("tx", mempool_validator)          # (data, sender) -> Verdict
    gossip.subscribe("consensus", consensus_validator)
    sync = BlockSync(node, ledger_source, on_caught_up=start_consensus)
    blobs = BlobService(node, BlobStore(data_dir / "blobs", max_blob_size=...))
    await node.start(); gossip.start(); sync.start()
    ...
    gossip.publish("tx", tx_bytes)                     # after local validation
    sync.notify_height()                               # after each committed block
    path = await blobs.fetch(blob_sha256, progress=cb)
    ...
    await node.stop()                                  # ends every task it owns

Modules: ``wire`` (messages and limits), ``handshake``, ``node`` (listener,
dialer, peer table, scoring, routing), ``peer`` (one connection), ``scoring``,
``addrbook`` (dial backoff), ``gossip_core`` (pure decisions) and ``gossip``
(its driver), ``sync`` (block sync, no I/O of its own) over ``sync_transport``
(the socket node's transport; the consensus simulator brings its own),
``blobstore`` and ``blobs``, ``testchain`` and
``testnode`` (stand-in ledger and node process for tests and benches).
"""
