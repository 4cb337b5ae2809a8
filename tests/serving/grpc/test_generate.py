from modelpress.serving.grpc import generate


def test_committed_stubs_are_what_the_proto_generates():
    assert generate.main(["--check"]) == 0, "run: python -m modelpress.serving.grpc.generate"


def test_the_stubs_live_beside_tritonclient_in_one_process():
    """Our messages are in a pool of their own: tritonclient's same-named ones still load, and the wire agrees."""
    from tritonclient.grpc import service_pb2

    from modelpress.serving.grpc.generated import open_inference_pb2 as pb

    ours = pb.ModelInferRequest(model_name="m", id="1", raw_input_contents=[b"\x01\x02"])
    ours.inputs.add(name="x", datatype="UINT8", shape=[1, 2])
    theirs = service_pb2.ModelInferRequest.FromString(ours.SerializeToString())
    assert (theirs.model_name, theirs.id, list(theirs.inputs[0].shape)) == ("m", "1", [1, 2])
    assert pb.ModelInferRequest.FromString(theirs.SerializeToString()) == ours
