# kontinuity - the two commands of the README, and the pieces they are made of.
#
#   make demo    install what is missing, build, snapshot a throwaway etcd
#   make check   install what is missing (packages and test peers), build
#                (normal, ASan+UBSan, libFuzzer), run every test
#
# Build directories live in the tree (ignored by git); test peers are cached
# outside it in ~/.cache/kontinuity/peers (see scripts/peers.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PYTEST     ?= python3 -m pytest

.PHONY: all deps test-deps peers build build-asan build-fuzz check unit demo bench bench-repo bench-app fuzz clean

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

peers: test-deps
	@scripts/peers.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dwerror=true

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dwerror=true -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

build-fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

# Every test: unit tests (normal and ASan+UBSan), fuzz corpora replay, and the
# integration suite against real etcd, MinIO and kube-apiserver.  pytest
# drives all of them so the run ends with one summary line.
check: test-deps peers build build-asan build-fuzz
	eval "$$(scripts/peers.sh --print-env)" && \
	KT_BUILD=$(BUILD) KT_ASAN_BUILD=$(ASAN_BUILD) KT_FUZZ_BUILD=$(FUZZ_BUILD) \
	$(PYTEST) -q -p no:cacheprovider tests

unit: build build-asan
	meson test -C $(BUILD) --print-errorlogs
	meson test -C $(ASAN_BUILD) --print-errorlogs

demo: deps build
	@scripts/deps.sh demo
	@scripts/peers.sh etcd
	@scripts/demo.sh $(BUILD)/src/cli/kontinuity

bench: build
	@scripts/deps.sh bench
	@scripts/peers.sh etcd
	bench/run.sh $(BUILD)/src/cli/kontinuity
	python3 bench/repo_bench.py $(BUILD)/src/cli/kontinuity
	eval "$$(scripts/peers.sh --print-env)" && python3 bench/app_bench.py $(BUILD)/src/cli/kontinuity

# Only the repository benchmark (kontinuity repo vs restic and borg, ~15 min).
bench-repo: build
	@scripts/deps.sh bench
	python3 bench/repo_bench.py $(BUILD)/src/cli/kontinuity

# Only the application benchmark (app backup/restore of 2,000 objects, ~1 min).
bench-app: build peers
	eval "$$(scripts/peers.sh --print-env)" && python3 bench/app_bench.py $(BUILD)/src/cli/kontinuity

# Run each libFuzzer target for FUZZ_SECONDS (default 60) growing the corpus.
FUZZ_SECONDS ?= 60
fuzz: build-fuzz
	for t in bbolt grpc kubeconfig s3xml config cron staticpod repo chunker volsnap app; do \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
