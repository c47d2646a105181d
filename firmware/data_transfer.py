# DataTransfer block (P01/P02). This station defines no vendor extensions, so every vendorId
# is unknown to it; the answer is always well-formed, whatever the data carries.
class Block:
    def __init__(self, station):
        self.st = station
        station.rpc.register("DataTransfer", self.data_transfer)

    def data_transfer(self, payload):
        return {"status": "UnknownVendorId"}
