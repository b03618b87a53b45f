#pragma once
#include <string>

#include <torch/torch.h>

namespace extrap {

// Sets LibTorch's intra-op threads: `requested` > 0, else every core (LibTorch defaults to 1
// here, which wastes the machine). Returns the count in effect.
int configure_threads(int requested);

// Peak resident memory of this process so far, in MiB.
double peak_rss_mib();

}  // namespace extrap
