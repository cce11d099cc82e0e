"""A minimal sysfs tree of USB-serial adapters, for running the real ``udevadm test`` against.

There is no USB adapter on a CI machine, but udev only ever sees a device through sysfs: the
``uevent`` file, the ``subsystem``/``driver`` links and attribute files of the device and its
parents. This writes exactly those for a ``ttyUSB`` behind a USB interface, a USB device (with
or without a serial number, as FTDI and CH340 differ), optional hubs and the PCI host
controller, laid out as the kernel does, so udev's own ``usb_id`` and ``path_id`` builtins derive
``ID_SERIAL_SHORT`` and ``ID_PATH`` from it just as on the industrial PC.
The tree is bind-mounted over ``/sys`` inside a private mount namespace (see test_units.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PCI = "devices/pci0000:00/0000:00:14.0"


@dataclass(frozen=True)
class UsbSerial:
    """One adapter port as the kernel shows it."""

    tty: str  # ttyUSB0
    vendor: str  # idVendor, 4 hex digits
    product: str  # idProduct
    port: str  # USB port path below root hub 1, e.g. "2" or "3.2" (hub port 2 on port 3)
    driver: str  # ftdi_sio, ch341, pl2303
    serial: str | None = None  # None: the chip reports no serial number (CH340, old PL2303)
    interface: int = 0  # bInterfaceNumber (FT2232H: 0 and 1)
    manufacturer: str = "Generic"
    product_name: str = "USB Serial"

    @property
    def minor(self) -> int:
        return int(self.tty.removeprefix("ttyUSB"))

    def usb_device_path(self) -> str:
        """Sysfs path of the USB device, through any hubs: usb1/1-3/1-3.2."""
        parts = self.port.split(".")
        path, name = f"{PCI}/usb1", "1"
        for i, part in enumerate(parts):
            name = f"{name}-{part}" if i == 0 else f"{name}.{part}"
            path = f"{path}/{name}"
        return path

    def interface_path(self) -> str:
        device = self.usb_device_path()
        return f"{device}/{device.rsplit('/', 1)[1]}:1.{self.interface}"

    def usb_serial_path(self) -> str:
        """The usb-serial port device (where FTDI's latency_timer lives)."""
        return f"{self.interface_path()}/{self.tty}"

    def syspath(self) -> str:
        """The tty device udev names; relative to /sys."""
        return f"{self.usb_serial_path()}/tty/{self.tty}"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_symlink():
        path.symlink_to(target)


def build(root: Path, adapters: list[UsbSerial]) -> None:
    """Write the sysfs files of ``adapters`` under ``root`` (later mounted as /sys)."""
    for sub in ("class/tty", "bus/pci", "bus/usb/drivers/usb", "bus/usb-serial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    pci = root / PCI
    _link(pci / "subsystem", "/sys/bus/pci")
    _write(pci / "uevent", "PCI_SLOT_NAME=0000:00:14.0\n")
    _link(root / PCI / "usb1" / "subsystem", "/sys/bus/usb")
    _write(root / PCI / "usb1" / "uevent", "DEVTYPE=usb_device\n")
    for adapter in adapters:
        # the device and every hub above it are usb_device nodes
        path = root / adapter.usb_device_path()
        while path != root / PCI / "usb1":
            _link(path / "subsystem", "/sys/bus/usb")
            if not (path / "uevent").exists():
                _write(path / "uevent", "DEVTYPE=usb_device\nDRIVER=usb\n")
            path = path.parent
        device = root / adapter.usb_device_path()
        _write(device / "idVendor", adapter.vendor + "\n")
        _write(device / "idProduct", adapter.product + "\n")
        _write(device / "manufacturer", adapter.manufacturer + "\n")
        _write(device / "product", adapter.product_name + "\n")
        _write(device / "bcdDevice", "0600\n")
        if adapter.serial is not None:
            _write(device / "serial", adapter.serial + "\n")

        interface = root / adapter.interface_path()
        _link(interface / "subsystem", "/sys/bus/usb")
        _write(interface / "uevent", f"DEVTYPE=usb_interface\nDRIVER={adapter.driver}\n")
        _write(interface / "bInterfaceNumber", f"{adapter.interface:02x}\n")
        for attr in ("bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"):
            _write(interface / attr, "ff\n")
        (root / "bus/usb/drivers" / adapter.driver).mkdir(parents=True, exist_ok=True)
        _link(interface / "driver", f"/sys/bus/usb/drivers/{adapter.driver}")

        port = root / adapter.usb_serial_path()
        _link(port / "subsystem", "/sys/bus/usb-serial")
        _write(port / "uevent", f"DRIVER={adapter.driver}\n")
        (root / "bus/usb-serial/drivers" / adapter.driver).mkdir(parents=True, exist_ok=True)
        _link(port / "driver", f"/sys/bus/usb-serial/drivers/{adapter.driver}")
        _write(port / "port_number", "0\n")
        if adapter.driver == "ftdi_sio":
            _write(port / "latency_timer", "16\n")

        tty = root / adapter.syspath()
        _link(tty / "subsystem", "/sys/class/tty")
        _write(tty / "uevent", f"MAJOR=188\nMINOR={adapter.minor}\nDEVNAME={adapter.tty}\n")
        _write(tty / "dev", f"188:{adapter.minor}\n")
