if (import.meta.main) console.log("todo");
