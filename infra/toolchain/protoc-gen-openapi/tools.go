//go:build tools

// Package tools only records the pinned tool as a dependency of this module.
package tools

import _ "github.com/google/gnostic/cmd/protoc-gen-openapi"
