#!/bin/sh
# Bootstrap the build system.  As root on Debian, first install what the
# build and the tests need but the machine lacks.
set -e
cd "$(dirname "$0")"

debian_packages="build-essential autoconf automake libtool pkg-config \
libaio-dev liburing-dev libpopt-dev libxxhash-dev libmount-dev libfuse3-dev fuse3 bash-completion \
util-linux mount procps e2fsprogs gddrescue clang libclang-rt-dev python3 xxd jq
groff-base man-db mandoc libnbd-dev libnbd-bin nbdkit qemu-utils libssl-dev xz-utils
libblkid-dev libext2fs-dev liblzma-dev libzstd-dev zlib1g-dev libbz2-dev \
zstd gzip bzip2 xfsprogs dosfstools ntfs-3g mtools exfatprogs exfat-fuse partclone fdisk iproute2
libexpat1-dev bmap-tools"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 &&
   [ -z "$KCOPY_NO_APT" ]; then
	missing=""
	for p in $debian_packages; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'ok installed' || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "autogen.sh: installing$missing"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
	fi
fi

mkdir -p m4 build-aux
autoreconf -fi
echo "autogen.sh: configuring"
./configure "$@"
