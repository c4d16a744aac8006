# taskguard — `make test` is the one command that runs every test (it installs
# what the tests need first). `make build` builds every program into bin/.
.PHONY: build test
build:
	CGO_ENABLED=0 go build -o bin/ ./cmd/...
test:
	scripts/test.sh
