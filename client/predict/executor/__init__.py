"""The executor role [PRED-EXEC.*]: answer the requests this node is drawn for, from
warm sandboxes, remembering its commitments across a crash."""
