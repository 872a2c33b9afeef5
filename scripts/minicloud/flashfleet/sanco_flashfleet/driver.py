"""The Cinder volume driver for SanCo FlashFleet, loaded the way a vendor's driver is:

    [sanco-flashfleet]
    volume_driver = sanco_flashfleet.driver.FlashFleetDriver
    volume_backend_name = sanco-flashfleet
    flashfleet_array_dir = /path/to/array
    flashfleet_pool = tempest
    san_login = ci
    san_password = ...

Volumes, snapshots and clones are sparse files on the array (``array.Array``). A host reaches
a volume through os-brick's ``local`` connector (the file itself): there is no iSCSI target
and no Nova, so attach tests skip as Tempest decides, while cinder-backup (posix driver) reads
and writes volumes through that connector.
"""

from __future__ import annotations

from cinder import exception, interface
from cinder.volume import configuration, driver
from cinder.volume.drivers.san import san
from oslo_config import cfg
from oslo_log import log as logging

from sanco_flashfleet.array import Array, ArrayError

LOG = logging.getLogger(__name__)

flashfleet_opts = [
    cfg.StrOpt("flashfleet_array_dir", help="Directory of the FlashFleet array "
               "(its array.json, pools and switches)"),
    cfg.StrOpt("flashfleet_pool", default="tempest", help="Pool new volumes go to"),
    cfg.StrOpt("flashfleet_protocol", default="local",
               help="storage_protocol reported to the scheduler and Tempest"),
]
cfg.CONF.register_opts(flashfleet_opts, group=configuration.SHARED_CONF_GROUP)


@interface.volumedriver
class FlashFleetDriver(driver.VolumeDriver):
    """SanCo FlashFleet volumes as sparse files in a directory standing for the array."""

    VERSION = "1.0.0"
    VENDOR = "SanCo"
    CI_WIKI_NAME = "SanCo_FlashFleet_CI"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(flashfleet_opts)
        self.configuration.append_config_values(san.san_opts)
        self.array: Array | None = None
        self._stats: dict = {}

    @staticmethod
    def get_driver_options():
        return flashfleet_opts + san.san_opts

    # -- set-up ------------------------------------------------------------------------------
    def do_setup(self, context):
        root = self.configuration.flashfleet_array_dir
        if not root:
            raise exception.InvalidConfigurationValue(option="flashfleet_array_dir",
                                                      value=root)
        array = Array(root)
        try:
            array.login(self.configuration.san_password or "")
        except ArrayError as exc:
            raise exception.VolumeBackendAPIException(data=str(exc)) from exc
        self.array = array
        LOG.info("FlashFleet array %(name)s (%(serial)s) logged in as %(login)s",
                 {"name": array.meta()["name"], "serial": array.meta()["serial"],
                  "login": self.configuration.san_login})

    def check_for_setup_error(self):
        pool = self.configuration.flashfleet_pool
        if pool not in self._array().pools():
            raise exception.VolumeBackendAPIException(
                data=f"pool {pool} not found on the FlashFleet array "
                     f"{self.configuration.flashfleet_array_dir}")

    def _array(self) -> Array:
        if self.array is None:
            raise exception.VolumeBackendAPIException(data="FlashFleet array not set up")
        return self.array

    def _call(self, what: str, fn, *args, **kwargs):
        """Call the array; its refusals become Cinder's backend errors."""
        try:
            return fn(*args, **kwargs)
        except ArrayError as exc:
            LOG.error("FlashFleet %(what)s failed: %(exc)s", {"what": what, "exc": exc})
            raise exception.VolumeBackendAPIException(data=f"{what}: {exc}") from exc

    @property
    def _pool(self) -> str:
        return self.configuration.flashfleet_pool

    # -- volumes and snapshots ---------------------------------------------------------------
    def create_volume(self, volume):
        self._call("create volume", self._array().create, self._pool, volume.name, volume.size)
        return {"provider_location": f"{self._pool}/{volume.name}"}

    def create_cloned_volume(self, volume, src_vref):
        self._call("clone volume", self._array().create, self._pool, volume.name, volume.size,
                   kind="clone", source=src_vref.name)
        return {"provider_location": f"{self._pool}/{volume.name}"}

    def create_volume_from_snapshot(self, volume, snapshot):
        self._call("create volume from snapshot", self._array().create, self._pool,
                   volume.name, volume.size, kind="clone", source=snapshot.name)
        return {"provider_location": f"{self._pool}/{volume.name}"}

    def delete_volume(self, volume):
        if not self._call("delete volume", self._array().delete, self._pool, volume.name):
            LOG.warning("volume %s was not on the array; nothing to delete", volume.name)

    def extend_volume(self, volume, new_size):
        self._call("extend volume", self._array().extend, self._pool, volume.name, new_size)

    def create_snapshot(self, snapshot):
        self._call("create snapshot", self._array().create, self._pool, snapshot.name,
                   snapshot.volume_size, kind="snapshot", source=snapshot.volume_name)

    def delete_snapshot(self, snapshot):
        self._call("delete snapshot", self._array().delete, self._pool, snapshot.name)

    def revert_to_snapshot(self, context, volume, snapshot):
        self._call("revert to snapshot", self._array().copy_into, self._pool, snapshot.name,
                   volume.name)

    # -- exports and connections (the local connector: the file itself) -------------------
    def create_export(self, context, volume, connector):
        return None

    def ensure_export(self, context, volume):
        return None

    def remove_export(self, context, volume):
        return None

    def initialize_connection(self, volume, connector):
        path = self._array().path(self._pool, volume.name)
        if not path.is_file():
            raise exception.VolumeBackendAPIException(
                data=f"volume {volume.name} is not on the array")
        return {"driver_volume_type": "local", "data": {"device_path": str(path)}}

    def terminate_connection(self, volume, connector, **kwargs):
        return None

    # -- stats -------------------------------------------------------------------------------
    def get_volume_stats(self, refresh=False):
        if refresh or not self._stats:
            self._update_volume_stats()
        return self._stats

    def _update_volume_stats(self):
        array = self._array()
        backend = self.configuration.safe_get("volume_backend_name") or "FlashFleet"
        pools = []
        for name in array.pools():
            figures = array.pool_stats(name)
            pools.append({"pool_name": name, **figures,
                          "reserved_percentage": self.configuration.reserved_percentage,
                          "max_over_subscription_ratio":
                              self.configuration.max_over_subscription_ratio,
                          "thin_provisioning_support": True,
                          "thick_provisioning_support": False,
                          "QoS_support": False, "multiattach": False,
                          "location_info": f"FlashFleet:{array.meta()['serial']}:{name}"})
        self._stats = {"volume_backend_name": backend, "vendor_name": self.VENDOR,
                       "driver_version": self.VERSION,
                       "storage_protocol": self.configuration.flashfleet_protocol,
                       "pools": pools}
