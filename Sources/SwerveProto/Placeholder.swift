internal import CSwerveProto
func _probe() -> Int { var m = Inference__ServerLiveResponse(); inference__server_live_response__init(&m); return Int(inference__server_live_response__get_packed_size(&m)) }
