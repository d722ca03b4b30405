/*
 * Host probes: KVM availability. Synchronous and quick; run once at daemon
 * start (and by --check / --print-argv), never from the argv builder.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "host.h"

int sv_host_kvm_probe(const char *dev, struct sv_error *err)
{
	int fd, vm, api, r;

	dev = dev ? dev : SV_KVM_DEVICE;
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return sv_error_set(err, r, "%s: %s", dev, strerror(-r));
	}
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		r = api < 0 ? -errno : -EPROTO;
		close(fd);
		if (api < 0)
			return sv_error_set(err, r, "%s: KVM_GET_API_VERSION: %s", dev,
			                    strerror(-r));
		return sv_error_set(err, r, "%s: KVM API version %d, expected %d", dev,
		                    api, KVM_API_VERSION);
	}
	vm = ioctl(fd, KVM_CREATE_VM, 0);
	r = vm < 0 ? -errno : 0;
	if (vm >= 0)
		close(vm);
	close(fd);
	if (r < 0)
		return sv_error_set(err, r, "%s: KVM_CREATE_VM: %s", dev, strerror(-r));
	return 0;
}
