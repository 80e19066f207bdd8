// Pins protoc-gen-openapi (gnostic), the protoc plugin that writes the OpenAPI 3
// document from the protos' google.api.http rules. `make setup` builds it into
// .tools/bin/protoc-gen-openapi; `make protos` runs it (protos/openapi.py).
module zentry.local/toolchain/protoc-gen-openapi

go 1.25.0

require github.com/google/gnostic v0.7.1

require (
	github.com/google/gnostic-models v0.7.0 // indirect
	go.yaml.in/yaml/v3 v3.0.4 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20250811160224-6b04f9b4fc78 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250811160224-6b04f9b4fc78 // indirect
	google.golang.org/protobuf v1.36.7 // indirect
)
