# Builds the two images of the seed, tokenmgr:1.0.0 and flexdirect:1.0.0, as in its README:
#   make clean && make
# The binaries are linked fully static on this host (CMake preset "static"), then each goes into a
# FROM scratch image with its LICENSE. No base image is pulled.
#
#   make                  both binaries, both images (checked to be under 10 MB each)
#   make tcontainer       tokenmgr image only    (also: make tokenmgr-image)
#   make fdcontainer      flexdirect image only  (also: make flexdirect-image)
#   make binaries         the two static binaries only
#   make sizes            print the image sizes
#   make clean            remove the static build, the staged contexts and the two images
#
# Variables: DOCKER (podman if installed, else docker), VERSION (1.0.0), REGISTRY (a prefix such as
# registry.example.com/bitfusion/, empty by default as in the seed), BUILD_DIR (build/static),
# PGO (1: profile-guided build in build/static-pgo, ~4 more minutes; see docs/benchmarks.md).

# The container engine: podman if it is on PATH, else docker. The image targets stop at once,
# before building anything, when there is none (scripts/install-deps.sh --with-images installs one).
DOCKER ?= $(firstword $(foreach t,podman docker,$(if $(shell command -v $(t) 2>/dev/null),$(t))))
VERSION ?= 1.0.0
REGISTRY ?=
PGO ?= 0
BUILD_DIR ?= build/static$(if $(filter 1,$(PGO)),-pgo)
CMAKE ?= cmake
STRIP ?= strip
MAX_IMAGE_BYTES ?= 10000000

TOKENMGR_IMAGE := $(REGISTRY)tokenmgr:$(VERSION)
FLEXDIRECT_IMAGE := $(REGISTRY)flexdirect:$(VERSION)
STAGE := $(BUILD_DIR)/images
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# The commit time, so that rebuilding the same commit gives the same labels.
CREATED := $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
IMAGE_ARGS := --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
              --build-arg CREATED=$(CREATED)

.DEFAULT_GOAL := all
IMAGE_GOALS := all default images tokenmgr-image flexdirect-image tcontainer fdcontainer sizes
ifneq ($(filter $(IMAGE_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
ifeq ($(DOCKER),)
$(error no container engine: neither podman nor docker is on PATH. Install one with \
  'scripts/install-deps.sh --with-images' (Debian: apt-get install podman runc), or set \
  DOCKER=/path/to/podman-or-docker; 'make binaries' needs neither)
endif
ifeq ($(shell command -v $(firstword $(DOCKER)) 2>/dev/null),)
$(error DOCKER=$(DOCKER): no such command on PATH. Install podman or docker with \
  'scripts/install-deps.sh --with-images', or set DOCKER to one that is installed)
endif
endif

.PHONY: all default images binaries tokenmgr-image flexdirect-image tcontainer fdcontainer \
        sizes clean

all default: images
images: tokenmgr-image flexdirect-image
tcontainer: tokenmgr-image
fdcontainer: flexdirect-image
binaries: $(BUILD_DIR)/build.ninja
	$(CMAKE) --build $(BUILD_DIR) --target tokenmgr license-holder

# The static preset uses spdlog and fmt header-only (cmake/static-deps.cmake).
# PGO=1: profile-guided and link-time optimized (scripts/build-pgo.sh: an instrumented build, a
# training run on 127.0.0.1, the optimized build), in build/static-pgo.
$(BUILD_DIR)/build.ninja:
ifeq ($(PGO),1)
	scripts/build-pgo.sh static $(BUILD_DIR)
else
	$(CMAKE) --preset static -B $(BUILD_DIR)
endif

# stage_context(image, binary, extra shell commands run in rootfs/)
define stage_context
	$(CMAKE) --build $(BUILD_DIR) --target $(2)
	rm -rf $(STAGE)/$(1) && mkdir -p $(STAGE)/$(1)/rootfs
	$(STRIP) -o $(STAGE)/$(1)/rootfs/$(2) $(BUILD_DIR)/src/bin/$(2)
	chmod 0755 $(STAGE)/$(1)/rootfs/$(2)
	install -m 0644 LICENSE $(STAGE)/$(1)/rootfs/LICENSE
	cd $(STAGE)/$(1)/rootfs && $(3)
endef

# check_size(image)
define check_size
	@size=$$($(DOCKER) image inspect --format '{{.Size}}' $(1)) && \
	  echo "$(1): $$size bytes" && \
	  if [ "$$size" -gt $(MAX_IMAGE_BYTES) ]; then \
	    echo "$(1) is larger than $(MAX_IMAGE_BYTES) bytes" >&2; exit 1; fi
endef

# The web page is compiled into tokenmgr; static assets are shipped only if they exist as files.
tokenmgr-image: $(BUILD_DIR)/build.ninja
	$(call stage_context,tokenmgr,tokenmgr,ln -s tokenmgr token)
	if [ -d web/html ]; then cp -R web/html $(STAGE)/tokenmgr/rootfs/html; fi
	$(DOCKER) build $(IMAGE_ARGS) -f build/docker/tokenmgr/Containerfile \
	  -t $(TOKENMGR_IMAGE) $(STAGE)/tokenmgr
	$(call check_size,$(TOKENMGR_IMAGE))

flexdirect-image: $(BUILD_DIR)/build.ninja
	$(call stage_context,flexdirect,license-holder,ln -s license-holder start)
	$(DOCKER) build $(IMAGE_ARGS) -f build/docker/flexdirect/Containerfile \
	  -t $(FLEXDIRECT_IMAGE) $(STAGE)/flexdirect
	$(call check_size,$(FLEXDIRECT_IMAGE))

sizes:
	$(call check_size,$(TOKENMGR_IMAGE))
	$(call check_size,$(FLEXDIRECT_IMAGE))

clean:
	rm -rf $(BUILD_DIR)
	$(if $(DOCKER),-$(DOCKER) rmi -f $(TOKENMGR_IMAGE) $(FLEXDIRECT_IMAGE) 2>/dev/null)
