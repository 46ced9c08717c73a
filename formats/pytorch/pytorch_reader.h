// Reader for PyTorch checkpoints: state dicts written by torch.save in its zip
// format (pytorch_model.bin, *.pt, *.pth), and sharded ones through
// pytorch_model.bin.index.json. Built only with LibTorch (SPARQ_WITH_TORCH=ON:
// the sparq_pytorch library, which defines SPARQ_HAVE_TORCH for its users);
// without it model loading reports that sparq was built without LibTorch.
// This header stays free of LibTorch's headers, and so do the programs that
// link sparq_pytorch: LibTorch is loaded (as libsparq_pytorch_plugin.so, see
// pytorch_plugin.h) the first time a checkpoint is read.
//
// The file is hostile input. LibTorch reads the zip container; the pickle
// inside (data.pkl) is interpreted by sparq itself, with a closed list of
// what it may contain: dicts (plain or collections.OrderedDict) of string ->
// tensor, the tuples, ints, strings and storages that describe a tensor, and
// the globals torch.save uses for them (torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter, torch.*Storage, collections.OrderedDict).
// Any other Python global is refused, so no code is ever run and no class
// is ever built. Every tensor's view is checked against the bytes of its
// storage before it is handed out.
//
// Memory: LibTorch reads (it does not map) each storage record into a heap
// buffer, so a PyTorch checkpoint costs its tensor bytes in RAM, where a
// safetensors file is mapped and costs nothing until read. Tensors point into
// those buffers (shared, e.g. by tied weights, and kept alive by the
// tensors); a tensor stored with non-contiguous strides is copied into a
// contiguous buffer of its own. Dtypes are kept as stored (F16/BF16 are not
// widened).
#pragma once

#include <string>

#include "formats/tensor_map.h"

namespace sparq {

// A torch.save zip of a dict of string -> tensor. Throws sparq::Error naming
// the file (and the tensor) on anything else.
TensorMap read_pytorch_checkpoint(const std::string& path);

// pytorch_model.bin.index.json and its shards, checked like sharded
// safetensors (see formats/sharded_safetensors.h).
TensorMap read_pytorch_sharded(const std::string& index_json_path);

}  // namespace sparq
